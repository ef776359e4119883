"""SNS Publish for backup vault notifications, with AWS errors turned into Snapkeep's errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from snapkeep.aws.errors import aws_errors


def publish(client: Any, topic_arn: str, subject: str, message: str, attributes: Mapping[str, str]) -> str:
    """Publish one message with String attributes (what subscription filter policies match on); its MessageId."""
    with aws_errors(f"SNS Publish to {topic_arn}"):
        answer = client.publish(
            TopicArn=topic_arn,
            Subject=subject,
            Message=message,
            MessageAttributes={name: {"DataType": "String", "StringValue": text} for name, text in attributes.items()},
        )
    return str(answer["MessageId"])

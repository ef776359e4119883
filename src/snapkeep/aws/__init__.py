"""Thin boto3 adapters. Nothing else in Snapkeep creates a boto3 client."""

"""Snapkeep: self-hosted backup and recovery for AWS EC2."""

__version__ = "0.1.0"

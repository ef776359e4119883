"""The HTTP API: AWS Backup's REST-JSON protocol, Signature Version 4 authentication, API keys and roles."""

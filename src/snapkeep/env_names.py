"""The names of the environment variables the CLI reads before it loads anything else (cli/early_unlock.py), in
a module that imports nothing; config.py reads the rest of the environment."""

REPO_PASSWORD_ENV = "SNAPKEEP_REPO_PASSWORD"
"""The passphrase of image repositories not wrapped by KMS, for the service's workers and the CLI alike."""
REPO_ENV = "SNAPKEEP_REPO"
"""The repository URL of `snapkeep repo|image` commands given no --repo."""

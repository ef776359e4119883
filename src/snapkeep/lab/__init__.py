"""The offline AWS lab: moto in server mode on 127.0.0.1, extended so EBS volumes carry data.

    with LabServer() as lab:                       # or: python -m snapkeep.lab --port 4566 --seed
        harness = LabHarness(lab.endpoint)         # act as the guest OS: write, read, digest volumes
        fleet = seed_fleet(lab.endpoint)           # two accounts, two regions, tagged instances with data

Importing this package does not import moto; starting a server (or `extension.install()`) does.
"""

from snapkeep.lab.blocks import BLOCK_SIZE
from snapkeep.lab.harness import Digest, LabHarness, LabHarnessError
from snapkeep.lab.server import LabServer, serve_forever

__all__ = ["BLOCK_SIZE", "Digest", "LabHarness", "LabHarnessError", "LabServer", "serve_forever"]

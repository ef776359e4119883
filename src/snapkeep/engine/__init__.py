"""The engine: scheduler, durable task queue with leases, workers and the resumable job steps."""

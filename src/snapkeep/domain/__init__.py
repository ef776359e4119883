"""The pure core: decisions only, no I/O, `now` passed in. Imports nothing but the standard library."""

"""What the tests share: stored histories, broker I/O, an HTTP receiver, message factories, worker processes."""

"""The finsent domain: configuration, entities, worker glue and the `finsent` command line."""

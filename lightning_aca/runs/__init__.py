"""What every run writes and reads back: its record (``record.json``) and the run information its loggers get."""

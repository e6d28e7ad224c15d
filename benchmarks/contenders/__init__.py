"""The programs the benchmark times, each run as its own process."""

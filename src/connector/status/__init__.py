"""The link's state in one report: queues, producers, runs, rejections, dead letters, limits."""

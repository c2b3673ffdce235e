"""What the connector remembers in Redis: cursors, agreed state, rejections, run history."""

"""Plain functions that apply change events to one system; actors only call them."""

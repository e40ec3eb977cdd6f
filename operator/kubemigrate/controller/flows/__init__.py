"""One state machine per kind: each ``step()`` reads the object, does the one next thing, writes
status through the models and says when to look again. The daemons call them in a loop."""

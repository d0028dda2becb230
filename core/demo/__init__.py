"""The demo of the embedded default: `.sandbox` tenants answered by the emulator in process, and the seed that replays
weeks of history through the real sync."""

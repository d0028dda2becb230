"""HaloPSA integration: wire records, HTTP client and the local emulator."""

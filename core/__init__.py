"""Core of the HaloPSA Sync Console: HaloPSA client and emulator, sync engine, storage, rules and read models.

Never imports streamlit: the pages and the command line (`python -m core`) are both built on this package.
"""

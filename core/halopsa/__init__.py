"""The HaloPSA client only (auth, transport, paging, rate budget, records, App Domain checks); HaloPSA wire names stop
here, and it never touches the console's storage."""

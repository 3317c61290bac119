# Not an address.
redirect "not an address";

require ["encoded-character", "fileinto"];
# A surrogate is no character (RFC 5228 §2.4.2.4): the script is in error.
if header :contains "Subject" "${unicode:D800}" { fileinto "X"; }

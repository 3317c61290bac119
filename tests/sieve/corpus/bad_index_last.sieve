require ["index", "fileinto"];
# :last without :index is an error (RFC 5260 §6).
if header :last "X-Tag" "alpha" { fileinto "X"; }

require ["index", "date", "fileinto", "relational"];
# :index on address and date (RFC 5260 §6). On date, :zone/:originalzone come before
# :index here: Pigeonhole 0.5.19 forgets an :index written before them (tags are
# order-free, RFC 5228 §2.6.2; postern takes either order).
if address :index 2 :is "To" "me@example.com" { fileinto "MeSecondTo"; }
if address :index 1 :last :domain "To" "example.com" { fileinto "LastToLocal"; }
if address :index 1 :localpart "To" "first" { fileinto "FirstIsFirst"; }
if address :index 2 :all "Cc" "boss@example.com" { fileinto "NoSecondCc"; }
if date :originalzone :index 1 :last "received" "date" "2026-12-04" { fileinto "SentDec4"; }
if date :zone "+0000" :index 2 "received" "hour" "04" { fileinto "Hop2At4UTC"; }
if date :zone "+0000" :index 1 :value "ge" "received" "date" "2026-12-05" { fileinto "ArrivedDec5"; }

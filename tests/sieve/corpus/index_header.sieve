require ["index", "fileinto"];
# RFC 5260 §6: one occurrence of a field, counted from the top or (:last) the bottom.
if header :index 1 "X-Tag" "alpha" { fileinto "FirstAlpha"; }
if header :index 2 :contains "X-Tag" "bet" { fileinto "SecondBeta"; }
if header :index 1 :last "X-Tag" "gamma" { fileinto "LastGamma"; }
if header :index 3 :last "X-Tag" "alpha" { fileinto "ThirdFromEndAlpha"; }
if header :index 4 "X-Tag" "alpha" { fileinto "NoFourth"; }
if header :index 1 :last :contains "Received" "by mail.example.com" { fileinto "OursOnTop"; }
if header :index 1 :contains "Received" "by mail.example.com" { fileinto "OursFirst"; }
if header :index 2 :matches "Received" "from relay1*" { fileinto "SecondHopRelay1"; }
if not header :index 1 :is "Subject" "" { fileinto "HasSubject"; }

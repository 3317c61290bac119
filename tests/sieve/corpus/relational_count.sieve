require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if address :count "ge" :comparator "i;ascii-numeric" ["To", "Cc"] "3" { fileinto "Many"; }
if header :count "eq" :comparator "i;ascii-numeric" "X-Spam-Score" "2" { fileinto "TwoScores"; }
if header :count "eq" :comparator "i;ascii-numeric" "Received" "0" { fileinto "NoReceived"; }

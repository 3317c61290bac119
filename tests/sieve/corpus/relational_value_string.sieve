require ["relational", "fileinto"];
if header :value "lt" "Subject" "M" { fileinto "AtoL"; }
if address :value "gt" :localpart "From" "m" { fileinto "LateSender"; }

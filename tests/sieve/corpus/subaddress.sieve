require ["envelope", "subaddress", "fileinto"];
if envelope :detail "to" "tag" { fileinto "Tagged"; }
if envelope :user "to" "me" { fileinto "User"; }
if address :detail "From" "news" { fileinto "News"; }
if address :detail :matches "To" "*" { fileinto "AnyDetail"; }

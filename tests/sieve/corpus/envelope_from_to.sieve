require ["envelope", "fileinto"];
if envelope :domain :is "from" "remote.example" { fileinto "FromRemote"; }
if envelope :localpart :contains "to" "me" { fileinto "ToMe"; }
if envelope :all :is "to" "me+tag@example.com" { fileinto "ToExact"; }

require "fileinto";
if address :domain :is "From" "example.com" { fileinto "Domain"; }
if address :localpart :is "From" "dana" { fileinto "Local"; }
if address :all :is "From" "promo@spam.example" { fileinto "All"; }
if address :is "To" "carol@example.com" { fileinto "SecondTo"; }

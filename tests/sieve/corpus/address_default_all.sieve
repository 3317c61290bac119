require "fileinto";
if address "From" "ann+news@lists.example.org" { fileinto "Ann"; }
if address :contains "Cc" "me+" { fileinto "Cc"; }

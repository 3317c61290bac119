require ["body", "fileinto"];
if body :contains "weekly numbers" { fileinto "Numbers"; }
if body :text :contains "pay the invoice" { fileinto "Pay"; }
if body :contains "WIN" { fileinto "Win"; }

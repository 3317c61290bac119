require ["body", "fileinto"];
if body :content "text/html" :contains "invoice" { fileinto "Html"; }
if body :content "text/plain" :contains "Grüße" { fileinto "Decoded"; }
if body :content "image" :contains "" { fileinto "Image"; }

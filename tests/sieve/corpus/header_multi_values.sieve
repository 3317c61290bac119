require "fileinto";
if header :is "X-Spam-Score" "15" { fileinto "Second"; }

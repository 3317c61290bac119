require "fileinto";
if header :contains "Subject" "argent €" { fileinto "Decoded"; }
if header :contains "Subject" "Spécial" { fileinto "Latin1"; }

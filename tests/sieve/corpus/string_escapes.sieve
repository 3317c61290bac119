require "fileinto";
if header :contains "Subject" "\"" { fileinto "Quote"; }
if header :matches "Subject" "\\[dev\\] *" { fileinto "Bracket"; }
fileinto "Back\\slash";

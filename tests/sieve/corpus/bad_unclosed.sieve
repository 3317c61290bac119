require "fileinto";
if header :is "Subject" "x" {
  fileinto "A";

require "fileinto";
if allof (exists "From", not exists "X-None", anyof (false, header :contains "Subject" "e")) {
    fileinto "Combined";
}
if anyof (false, false) { fileinto "Never"; }
if not true { fileinto "Never2"; }

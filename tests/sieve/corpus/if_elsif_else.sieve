require "fileinto";
if header :is "Subject" "Lunch?" {
    fileinto "Personal";
} elsif header :contains "Subject" "invoice" {
    fileinto "Bills";
} elsif header :matches "Subject" "*report*" {
    fileinto "Reports";
} else {
    fileinto "Other";
}

require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "ge" :comparator "i;ascii-numeric" "X-Spam-Score" "10" {
    fileinto "Junk";
} elsif header :value "gt" :comparator "i;ascii-numeric" "X-Spam-Score" "2" {
    fileinto "Maybe";
}

require ["variables", "fileinto"];
if header :matches "List-Id" "*<*.lists.example.org>" {
    fileinto "Lists/${2}";
}
if header :matches "Subject" "* *" {
    fileinto "First/${1}";
}

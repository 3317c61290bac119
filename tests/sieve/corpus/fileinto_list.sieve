require "fileinto";
# File mailing-list traffic by its List-Id.
if header :contains "List-Id" "dev.lists.example.org" {
    fileinto "Lists/dev";
} elsif exists "List-Unsubscribe" {
    fileinto "Lists/other";
}

require ["vacation", "fileinto"];
if not header :contains "Subject" "urgent" {
    vacation :days 1 :subject "Out of office" :from "me@example.com"
             :addresses ["me@example.com", "me+tag@example.com"] :handle "ooo-2026"
text:
I am on holiday.
.
;
}
fileinto "Seen-While-Away";

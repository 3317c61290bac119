require ["fileinto", "copy", "imap4flags"];
if address :domain "From" ["example.com", "friend.example"] {
    addflag "Known";
    fileinto :copy "Known";
    redirect :copy "phone@sms.example";
}
if header :contains "Subject" ["report", "invoice"] { fileinto "Work"; stop; }
keep;

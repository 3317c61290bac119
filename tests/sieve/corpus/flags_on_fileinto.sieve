require ["imap4flags", "fileinto"];
fileinto :flags ["\\Seen", "\\Answered"] "Done";
addflag "\\Flagged";
keep;

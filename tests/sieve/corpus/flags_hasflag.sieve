require ["imap4flags", "fileinto"];
addflag "Work Urgent";
if hasflag :contains "urg" { fileinto "HasUrg"; }
if hasflag :is ["nope", "WORK"] { fileinto "HasWork"; }
removeflag "Urgent";

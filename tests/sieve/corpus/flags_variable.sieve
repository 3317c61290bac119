require ["imap4flags", "variables", "fileinto"];
set "f" "";
addflag "f" "\\Seen";
addflag "f" "Custom";
fileinto :flags "${f}" "WithVar";

require "imap4flags";
setflag "\\Seen";
addflag ["\\Flagged", "$Important"];
removeflag "\\Seen";

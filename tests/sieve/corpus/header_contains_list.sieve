require "fileinto";
if header :contains ["To", "Cc"] ["carol", "team@"] { fileinto "Team"; }

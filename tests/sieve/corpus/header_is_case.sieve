require "fileinto";
if header :is "subject" "LUNCH?" { fileinto "casemap"; }
if header :is :comparator "i;octet" "subject" "LUNCH?" { fileinto "octet"; }
if header :is :comparator "i;ascii-casemap" "subject" "lunch?" { fileinto "casemap2"; }

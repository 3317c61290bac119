require "fileinto";
if header :matches "Subject" "??nch*" { fileinto "Q"; }
if header :matches "Subject" "Invoice ????-??" { fileinto "Invoice"; }
if header :matches "Message-ID" "<*@*.example>" { fileinto "MsgId"; }
if header :matches "Subject" "*\\?" { fileinto "Question"; }

require "fileinto";
# header_matches_wild without its leading "??" pattern (see EXPECTED_DIFFERENCES).
if header :matches "Subject" "L?nch*" { fileinto "Q"; }
if header :matches "Subject" "Invoice ????-??" { fileinto "Invoice"; }
if header :matches "Message-ID" "<*@*.example>" { fileinto "MsgId"; }
if header :matches "Subject" "*\\?" { fileinto "Question"; }
if header :matches "Subject" "*e?k*" { fileinto "Weekly"; }

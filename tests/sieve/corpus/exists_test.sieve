require "fileinto";
if exists "List-Id" { fileinto "List"; }
if exists ["From", "X-Spam-Flag"] { fileinto "Flagged"; }
if not exists "Auto-Submitted" { fileinto "Human"; }

require "fileinto";
if address :matches "To" "*" { fileinto "HasTo"; }
if not address :matches "To" "*" { fileinto "NoAddress"; }

require "fileinto";
if size :over 1K { fileinto "Big"; }
if size :under 400 { fileinto "Small"; }
if size :over 6518 { fileinto "OverExact"; }
if size :under 6518 { fileinto "UnderExact"; }

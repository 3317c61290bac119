require "vacation";
vacation :days 5 :subject "Away" "I am away until Monday.";

require "reject";
if header :is "X-Spam-Flag" "YES" {
    reject "Your message looks like spam.";
}

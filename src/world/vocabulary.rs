//! Every word a caption can contain, gathered from the vocabularies captions are built from
//! (colours, pattern adjectives, object nouns, ground and time-of-day phrases, articles and
//! connectives), so a tokenizer vocabulary for the tiny text encoder can be built from it.

use super::environment::{Ground, TimeOfDay};
use super::materials::{Colour, Pattern};
use super::objects::ObjectKind;
use super::spec::{AND, ARTICLES, NEXT_TO};

/// The words of a caption, in order (captions are lower case, separated by single spaces,
/// without punctuation).
pub fn caption_words(caption: &str) -> impl Iterator<Item = &str> {
    caption.split_whitespace()
}

/// Every word captions of the world can contain, sorted and without duplicates.
pub fn caption_vocabulary() -> Vec<&'static str> {
    let phrases = ARTICLES
        .into_iter()
        .chain([NEXT_TO, AND])
        .chain(Colour::ALL.map(Colour::name))
        .chain(Pattern::ADJECTIVES)
        .chain(ObjectKind::ALL.map(ObjectKind::noun))
        .chain(Ground::ALL.map(Ground::phrase))
        .chain(TimeOfDay::ALL.into_iter().filter_map(TimeOfDay::phrase));
    let mut words: Vec<&'static str> = phrases.flat_map(caption_words).collect();
    words.sort_unstable();
    words.dedup();
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{ClipPlan, DemoSubject, Split, TrajectorySampler};

    #[test]
    fn every_caption_of_500_clips_uses_only_listed_words() {
        let vocabulary = caption_vocabulary();
        let trajectories = TrajectorySampler::default();
        let mut samplers = vec![Split::Train.sampler(), Split::Eval.sampler()];
        samplers.extend(DemoSubject::ALL.map(|s| Split::Eval.subject_sampler(s)));
        let mut seen = std::collections::BTreeSet::new();
        for index in 0..500u64 {
            let split = [Split::Train, Split::Eval][index as usize % 2];
            let sampler = &samplers[index as usize % samplers.len()];
            let seed = split.seed(index).unwrap();
            let plan = ClipPlan::sample(seed, sampler, &trajectories).unwrap();
            let caption = plan.spec.caption();
            for word in caption_words(&caption) {
                assert!(
                    vocabulary.binary_search(&word).is_ok(),
                    "`{word}` of clip {seed} (`{caption}`) is not listed"
                );
                seen.insert(word.to_owned());
            }
        }
        // The listing is not padded with words no caption uses (every word shows up in 500).
        let unused: Vec<_> = vocabulary.iter().filter(|w| !seen.contains(**w)).collect();
        assert!(unused.is_empty(), "never used: {unused:?}");
    }

    #[test]
    fn vocabulary_is_sorted_unique_and_splits_phrases() {
        let vocabulary = caption_vocabulary();
        assert!(vocabulary.windows(2).all(|w| w[0] < w[1]));
        for word in [
            "a", "an", "next", "to", "and", "teddy", "bear", "wooden", "floor", "at",
        ] {
            assert!(vocabulary.contains(&word), "{word}");
        }
        assert!(vocabulary.iter().all(|w| !w.contains(' ')));
    }
}
